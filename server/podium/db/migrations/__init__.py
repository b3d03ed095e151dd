"""Alembic's scripts for Podium's schema: ``env.py`` and one file per revision in ``versions/``.

They ship inside the package (no ``alembic.ini``): :mod:`podium.db.schema` points Alembic at this
folder and runs them on a connection it opens. A new revision, from the repository's root, after
changing :mod:`podium.db.models`::

    .venv/bin/python -c "from podium.db import schema; schema.revision('what it changes')"

writes ``versions/NNNN_what_it_changes.py`` from the differences between a scratch database at the
newest revision and the models (autogenerate): read it, fix it, and test it. On SQLite the ALTERs are
written as batch operations (the table is copied), and constraints have no names unless the models
give them one.
"""
