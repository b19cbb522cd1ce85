from tests.gateway.conftest import backends_module, gateway_module  # noqa: F401 - shared fixtures
