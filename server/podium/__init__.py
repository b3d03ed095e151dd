"""Podium: agent-less management appliance for XCP-ng / XenServer pools."""

__version__ = "0.1.0"
