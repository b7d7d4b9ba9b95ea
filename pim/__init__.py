"""Behavioral model of the SRAM processing-in-memory first layer and its energy/delay model."""
