"""What the tests start and drive: the simulator, the server, nginx, PostgreSQL, the CLI, the appliance's
parts and the updater as real processes, and the small helpers they share."""
