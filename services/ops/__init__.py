"""What operators use: pipeline status, dead letters, heartbeats and the stall watchdog."""
