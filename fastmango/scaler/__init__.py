"""Turns observations and policies into decisions and cost figures (pure logic)."""
