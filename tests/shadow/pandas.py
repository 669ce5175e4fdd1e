raise ImportError("pandas is hidden by tests/shadow for this test")
