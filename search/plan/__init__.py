"""`robprune plan`: what a search will run and cost, before anything runs."""
