"""cocotb testbenches; each module is loaded by cocotb inside the HDL simulator."""
