"""Flows: dialog graphs as data files, validated at start-up."""

from dm.flows.loader import FlowError, load_flow, load_flows
from dm.flows.model import Flow, Node, SlotSpec, Transition

__all__ = ["Flow", "FlowError", "Node", "SlotSpec", "Transition", "load_flow", "load_flows"]
