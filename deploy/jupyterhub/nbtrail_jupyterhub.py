"""JupyterHub integration of the nbtrail capture gateway.

For each user the Hub starts the single-user server on a private address and, in front of it, one
``nbtrail-gateway`` run as its own account with ``--user <name>``; ``start()`` returns the gateway's
address, so the Hub's proxy routes ``/user/<name>/`` to the gateway. The user recorded in the capture
log is fixed here, by the Hub, on the gateway's command line: no request header is believed. The
single-user server still checks the Hub's OAuth on every request.

Fail closed: if the gateway cannot start, the spawn fails (the server is stopped); if it dies, ``poll()``
reports the server stopped so the Hub stops routing to it, and ``stop()`` stops the server too.

Configuration (``jupyterhub_config.py``)::

    import sys; sys.path.insert(0, "/opt/nbtrail/deploy/jupyterhub")
    c.JupyterHub.spawner_class = "nbtrail_jupyterhub.NbtrailSpawner"   # LocalProcessSpawner + gateway
    c.NbtrailSpawner.gateway_command = ["/usr/local/bin/nbtrail-gateway"]
    c.NbtrailSpawner.log_root = "/var/log/nbtrail"                    # one directory per user
    c.NbtrailSpawner.gateway_account = "nbtrail"                       # the gateway's own account
    c.NbtrailSpawner.gateway_args = ["--sign-key", "/etc/nbtrail/gateway.key"]
    c.Spawner.ip = "127.0.0.1"

and keep the single-user servers' ports unreachable except from the gateway's account, e.g.
``iptables -A OUTPUT -o lo -p tcp --dport 40000:60000 -m owner ! --uid-owner nbtrail -j REJECT`` with
``c.Spawner.port_range``-style fixed ranges, or a network namespace (see docs/gateway.md).
"""

import asyncio
import os
import pwd
import signal
import subprocess

from jupyterhub.spawner import LocalProcessSpawner, SimpleLocalProcessSpawner, Spawner
from jupyterhub.utils import random_port
from traitlets import Float, List, Unicode


class NbtrailMixin(Spawner):
    """Starts ``nbtrail-gateway`` in front of the single-user server the base spawner starts."""

    gateway_command = List(
        Unicode(), ["nbtrail-gateway"], help="The gateway executable (and fixed leading arguments)."
    ).tag(config=True)
    gateway_args = List(
        Unicode(), [], help="More gateway arguments (signing key, segment sizes, bounds, ...)."
    ).tag(config=True)
    log_root = Unicode(
        "/var/log/nbtrail", help="Capture logs go to LOG_ROOT/<username>, created for the gateway's account."
    ).tag(config=True)
    gateway_account = Unicode(
        "", help="Run the gateway as this account (needs the Hub to run as root). Empty: the Hub's own."
    ).tag(config=True)
    gateway_start_timeout = Float(30.0, help="Seconds to wait for the gateway to listen.").tag(config=True)

    _gateway = None
    _gateway_pid = 0

    def _log_dir(self):
        name = self.user.name
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"user name {name!r} cannot name a log directory")
        d = os.path.join(self.log_root, name)
        os.makedirs(d, mode=0o700, exist_ok=True)
        if self.gateway_account:
            pw = pwd.getpwnam(self.gateway_account)
            os.chown(d, pw.pw_uid, pw.pw_gid)
        os.chmod(d, 0o700)
        return d

    def _demote(self):
        if not self.gateway_account:
            return None
        pw = pwd.getpwnam(self.gateway_account)

        def run_as_gateway_account():
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)

        return run_as_gateway_account

    async def start(self):
        # The real server on a private port; the gateway on the port the Hub routes to.
        self.port = random_port()
        ip, port = await super().start()
        try:
            gw_port = await self._start_gateway(ip or "127.0.0.1", port)
        except Exception:
            await super().stop(now=True)
            raise
        return (ip or "127.0.0.1", gw_port)

    async def _start_gateway(self, ip, upstream_port):
        cmd = list(self.gateway_command) + [
            "--listen", f"{ip}:0",
            "--upstream", f"http://{ip}:{upstream_port}",
            "--log-dir", self._log_dir(),
            "--user", self.user.name,
        ] + list(self.gateway_args)
        self.log.info("Starting nbtrail-gateway for %s: %s", self.user.name, " ".join(cmd))
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            preexec_fn=self._demote(),
            start_new_session=True,
            cwd="/",
        )
        self._gateway, self._gateway_pid = proc, proc.pid
        loop = asyncio.get_running_loop()
        line = await asyncio.wait_for(
            loop.run_in_executor(None, proc.stdout.readline), self.gateway_start_timeout
        )
        text = line.decode("utf-8", "replace").strip()
        prefix = "nbtrail-gateway listening on "
        if not text.startswith(prefix):
            proc.kill()
            raise RuntimeError(f"nbtrail-gateway did not start for {self.user.name}: {text!r}")
        return int(text[len(prefix):].rsplit(":", 1)[1])

    def _gateway_alive(self):
        if self._gateway is not None:
            return self._gateway.poll() is None
        if self._gateway_pid:
            try:
                os.kill(self._gateway_pid, 0)
                return True
            except OSError:
                return False
        return False

    async def poll(self):
        proc, pid = self._gateway, self._gateway_pid
        status = await super().poll()
        if status is not None:
            # The server is gone: so is the reason for its gateway.
            await self._stop_gateway(proc, pid)
            return status
        if not self._gateway_alive():
            # No capture, no service: report the server stopped so the Hub stops routing to it.
            self.log.error("nbtrail-gateway for %s is gone: stopping the server", self.user.name)
            await self.stop(now=True)
            return 1
        return status

    async def stop(self, now=False):
        # The base class clears the state (our pid with it) when the server is gone: take it first.
        proc, pid = self._gateway, self._gateway_pid
        try:
            await super().stop(now=now)
        finally:
            await self._stop_gateway(proc, pid)

    async def _stop_gateway(self, proc, pid):
        self.log.info("Stopping nbtrail-gateway for %s (pid %s)", self.user.name, pid)
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)  # the gateway closes its log on SIGTERM
            except OSError:
                pass
            if proc is not None:
                try:
                    await asyncio.get_running_loop().run_in_executor(None, proc.wait, 10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self._gateway, self._gateway_pid = None, 0

    def get_state(self):
        state = super().get_state()
        if self._gateway_pid:
            state["nbtrail_gateway_pid"] = self._gateway_pid
        return state

    def load_state(self, state):
        super().load_state(state)
        self._gateway_pid = state.get("nbtrail_gateway_pid", 0)


class NbtrailSpawner(NbtrailMixin, LocalProcessSpawner):
    """LocalProcessSpawner (servers run as the users' system accounts) with the capture gateway in front."""


class NbtrailSimpleSpawner(NbtrailMixin, SimpleLocalProcessSpawner):
    """SimpleLocalProcessSpawner (no system accounts; trials and tests) with the capture gateway in front."""
