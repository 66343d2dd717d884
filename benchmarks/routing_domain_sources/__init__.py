"""Collectors for the routing domain set's held-out split (v2): real text from packages nobody on the project wrote.

Each module's ``collect(workdir)`` downloads its pinned packages (``_fetch.fetch``) and returns
``[(source_id, [(text, label, section, file), ...]), ...]``, labelled by where the upstream project
filed each entry, never by its wording. ``build_routing_domain.py`` de-duplicates and balances them.
"""
