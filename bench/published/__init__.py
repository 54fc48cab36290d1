"""Published whole-model latencies and placements, rebuilt as Core ML models (random weights)."""
