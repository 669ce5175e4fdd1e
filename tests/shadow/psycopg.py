raise ImportError("psycopg is hidden by tests/shadow for this test")
