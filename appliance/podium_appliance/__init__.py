"""Podium appliance: first-boot wizard, updater and the parts that run only on the appliance."""
