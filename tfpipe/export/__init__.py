"""Exports for the device side: golden vectors the Android core and the Coral runner are checked against."""
