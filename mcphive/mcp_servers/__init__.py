"""MCP servers over mcphive's substrates: shared state, the workspace toolsets, RAG, and the hive gateway.

Agents reach every tool and every piece of shared state through these servers; by default the
hive connects to them in-process, and ``mcphive serve`` runs them over stdio.
"""
