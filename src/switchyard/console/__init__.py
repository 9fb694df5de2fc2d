"""The web console: configuration, flags and limits at a glance, changed from a browser.

Pages rendered on the server (Jinja2, with htmx for the parts that change without a
reload) over the gRPC API itself, called as the signed-in user: authentication,
permissions, validation and the audit trail are the API's own. `start_console` serves it
beside the gRPC server; see "Web console" in the README.
"""

from switchyard.console.app import build_app
from switchyard.console.server import RunningConsole, start_console

__all__ = ["RunningConsole", "build_app", "start_console"]
