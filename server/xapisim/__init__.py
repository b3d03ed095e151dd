"""XAPI pool simulator: real pool databases served over the real XAPI wire protocol (never imports podium)."""
