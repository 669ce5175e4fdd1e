raise ImportError("torch is hidden by tests/shadow for this test")
