"""Local stand-ins for production services, used by the demo and the tests (real servers, not mocks)."""
