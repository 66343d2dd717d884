"""Deciding who does what, and in which order: the routing cascade, the prioritizer and the agent manager."""
