"""Training code of the three models; plain Python, imports no Django app."""
