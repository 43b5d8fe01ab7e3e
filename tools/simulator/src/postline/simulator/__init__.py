"""Destination simulator: an SMTP server standing in for the internet's mail servers (dev/test).

Recipients are answered by local part (see :mod:`postline.simulator.behaviour`); every
accepted message is recorded and readable through the control API.
"""

from postline.simulator.simulator import Simulator

__all__ = ["Simulator"]
