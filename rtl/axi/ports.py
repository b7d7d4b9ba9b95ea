"""AXI4-Stream and AXI4-Lite port members with the standard flat names (``s_axis_tdata``,
``s_axil_awaddr``, ...), as the signature members of a Verilog top that vendor tools and
``cocotbext-axi`` find by prefix."""

from __future__ import annotations

from amaranth.lib.wiring import In, Out


def axis_members(prefix: str, data_bits: int, *, master: bool) -> dict:
    """``{prefix}_tdata/tvalid/tready/tlast``: a stream the component sends (``master``) or
    receives."""
    there, back = (Out, In) if master else (In, Out)
    return {
        f"{prefix}_tdata": there(data_bits),
        f"{prefix}_tvalid": there(1),
        f"{prefix}_tready": back(1),
        f"{prefix}_tlast": there(1),
    }


def axil_members(prefix: str, addr_bits: int) -> dict:
    """An AXI4-Lite slave port ``{prefix}_*`` with 32-bit data."""
    p = prefix
    return {
        f"{p}_awaddr": In(addr_bits),
        f"{p}_awprot": In(3),
        f"{p}_awvalid": In(1),
        f"{p}_awready": Out(1),
        f"{p}_wdata": In(32),
        f"{p}_wstrb": In(4),
        f"{p}_wvalid": In(1),
        f"{p}_wready": Out(1),
        f"{p}_bresp": Out(2),
        f"{p}_bvalid": Out(1),
        f"{p}_bready": In(1),
        f"{p}_araddr": In(addr_bits),
        f"{p}_arprot": In(3),
        f"{p}_arvalid": In(1),
        f"{p}_arready": Out(1),
        f"{p}_rdata": Out(32),
        f"{p}_rresp": Out(2),
        f"{p}_rvalid": Out(1),
        f"{p}_rready": In(1),
    }
