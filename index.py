"""Function Compute entry points: thin; everything happens in reinit.app."""

from reinit.app import App

_app = App()


def initialize(context):
    """Instance initializer (s.yaml instanceLifecycleConfig.initializer): builds clients once."""
    _app.initialize(context)


def handler(event, context):
    """The event handler for every trigger kind (http, eventbridge, timer, invoke)."""
    return _app.handle(event, context)
