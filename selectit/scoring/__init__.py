"""Stage `aggregate`: the SelectIT formulas and the tables from ratings to scores."""
