"""The UI shell: base layout, navigation by role, home page, error pages."""
