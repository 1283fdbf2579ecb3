"""Corral's shared kit: the pieces every service needs exactly once."""
