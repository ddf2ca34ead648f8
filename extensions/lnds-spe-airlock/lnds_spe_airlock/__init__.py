"""LNDS SPE airlock in JupyterLab: the lab extension's server part.

The lab never talks to the airlock service itself: it calls this Jupyter server extension, which
forwards an allow-listed set of airlock API calls with the server's own hub token
($JUPYTERHUB_API_TOKEN, which the hub gives the airlock scope of this server's kind). Nothing is
uploaded: adding a file names it in the project's outputs folder and the airlock copies it on the
hub side.
"""

try:
    from ._version import __version__
except ImportError:  # an unbuilt source tree
    __version__ = "dev"


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "lnds-spe-airlock"}]


def _jupyter_server_extension_points():
    return [{"module": "lnds_spe_airlock"}]


def _load_jupyter_server_extension(server_app):
    """Register the extension's routes on the Jupyter server."""
    from .routes import setup_handlers

    setup_handlers(server_app.web_app, server_app.log)
    server_app.log.info("lnds_spe_airlock: airlock calls go to %s",
                        server_app.web_app.settings.get("lnds_spe_airlock_url") or "(not configured)")
