"""The whole system as local processes: the simulator, the five services, embedded ClickHouse."""

from postline.devstack.stack import Ports, Stack

__all__ = ["Ports", "Stack"]
