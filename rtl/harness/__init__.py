"""The chip's simulation harness: a generated Verilog shell that runs samples without Python
(``shell``), and the host side that reads its output files back (``output``)."""
