"""The running daemon: its loop and schedules, health and readiness, metrics, systemd notify."""
