"""The Dagster Component side of the package: ``ReleaseComponent`` and ``ReleasePlatformComponent``
(``component.py``), the stage wiring they and ``definitions.py`` build from (``wiring.py``), and the
``dg scaffold`` file writers (``scaffold.py``; from a table, ``table_scaffold.py``). Nothing is imported here, so a
module that only needs the scaffold does not load Dagster."""
