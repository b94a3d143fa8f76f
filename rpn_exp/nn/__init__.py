"""Modules that own parameters: the RPN head, layer and network, their description, and the member stack that
trains several networks of one shape as one."""

from rpn_exp.nn.describe import count_frozen, count_learnable
from rpn_exp.nn.head import RPNHead
from rpn_exp.nn.layer import RPNLayer
from rpn_exp.nn.network import RPNNetwork

__all__ = ["RPNHead", "RPNLayer", "RPNNetwork", "count_frozen", "count_learnable"]
