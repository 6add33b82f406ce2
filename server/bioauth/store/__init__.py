"""The template store: sealed templates, subjects, consent and the hash-chained audit log.

Backends: SQLite (embedded default) and PostgreSQL (asyncpg), behind ``TemplateStore``; build the
configured one with ``bioauth.store.factory.open_store``. Names are imported from the module that
defines them (the store's types from ``bioauth.store.protocol``); this package re-exports nothing.
"""
