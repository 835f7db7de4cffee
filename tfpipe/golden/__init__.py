"""Golden vectors of a run's export bundle (runs/NAME/export): what the Python pipeline feeds a model
and reads back, which the Android app's Kotlin core and the Coral runner are checked against."""
