"""The app's screens: one module per screen (or family of small modal forms)."""
