"""Great Expectations suites: the examples (stage `validate`) and the rating tables (stage `aggregate`)."""
