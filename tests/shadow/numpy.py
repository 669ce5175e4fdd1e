raise ImportError("numpy is hidden by tests/shadow for this test")
