#!/usr/bin/env python3
"""The web page's test in a real browser: serves web/dist on 127.0.0.1, opens
index.html?selftest in headless Chromium (WebGPU on SwiftShader, no GPU needed) through the
DevTools protocol, waits for the page's #selftest element to hold its JSON line, and checks it:
ok, at least five kernel families within tolerance, and a training loss that fell. On any
failure it prints the browser's console output and exits 1. Python's standard library only
(the DevTools WebSocket is spoken below).

Usage: web_test.py CHROMIUM DIST_DIR [TIMEOUT_S]
"""

import base64
import functools
import http.server
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

# WebGPU on SwiftShader without a GPU, and nothing that reaches the network.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--enable-unsafe-webgpu",
    "--enable-features=Vulkan",
    "--use-vulkan=swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-extensions",
    "--disable-breakpad",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--remote-debugging-port=0",
]


class WebSocket:
    """A minimal client WebSocket (RFC 6455): text frames out (masked), frames in."""

    def __init__(self, url):
        host_port, path = url[len("ws://"):].split("/", 1)
        host, port = host_port.split(":")
        self.sock = socket.create_connection((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            response += chunk
        if b" 101 " not in response.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"DevTools refused the WebSocket: {response[:200]!r}")
        self.buffer = response.split(b"\r\n\r\n", 1)[1]

    def send(self, text):
        data = text.encode()
        header = bytes([0x81])
        n = len(data)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _read(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def recv(self):
        """The next whole message's text (continuation frames joined)."""
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            if opcode in (0x9, 0xA):  # ping, pong
                continue
            message += payload
            if b0 & 0x80:
                return message.decode()


class DevTools:
    """Commands to one page target, collecting its console output as events arrive."""

    def __init__(self, ws_url):
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.console = []

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.event(msg)

    def event(self, msg):
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
            self.console.append(f"console.{p['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            text = d.get("exception", {}).get("description", d.get("text", ""))
            self.console.append(f"exception: {text}")
        elif method == "Log.entryAdded":
            e = p["entry"]
            self.console.append(f"log.{e['level']}: {e['text']}")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".wasm": "application/wasm", ".js": "text/javascript"}

    def log_message(self, *args):
        pass


def serve(directory):
    handler = functools.partial(QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def devtools_port(profile, browser, deadline):
    path = os.path.join(profile, "DevToolsActivePort")
    while time.time() < deadline:
        if browser.poll() is not None:
            raise RuntimeError(f"Chromium exited with status {browser.returncode}")
        if os.path.exists(path):
            lines = open(path).read().split()
            if lines:
                return int(lines[0])
        time.sleep(0.1)
    raise TimeoutError("Chromium did not open its DevTools port")


def check(result):
    """What is wrong with the self-test's outcome; empty when it passed."""
    problems = []
    if result.get("ok") is not True:
        problems.append(f"ok is {result.get('ok')!r}" +
                        (f": {result['error']}" if result.get("error") else ""))
    if result.get("kernels_checked", 0) < 5:
        problems.append(f"only {result.get('kernels_checked', 0)} kernel families passed")
    first, last = result.get("loss_first"), result.get("loss_last")
    if not (isinstance(first, (int, float)) and isinstance(last, (int, float)) and last < first):
        problems.append(f"the loss did not fall: first {first}, last {last}")
    return problems


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    chromium, dist = sys.argv[1], sys.argv[2]
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 600
    server = serve(dist)
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html?selftest"
    profile = tempfile.mkdtemp(prefix="gpu-ae-chromium-")
    log = tempfile.TemporaryFile()
    browser = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    tools = None
    start = time.time()
    try:
        port = devtools_port(profile, browser, deadline)
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(t for t in targets if t.get("type") == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        tools.call("Runtime.enable")
        tools.call("Log.enable")
        tools.call("Page.navigate", url=url)
        text = ""
        while time.time() < deadline:
            r = tools.call("Runtime.evaluate",
                           expression="(document.getElementById('selftest') || {}).textContent || ''",
                           returnByValue=True)
            text = r.get("result", {}).get("value", "")
            if text:
                break
            time.sleep(1)
        if not text:
            raise TimeoutError(f"no #selftest result within {timeout:.0f} s")
        result = json.loads(text)
        problems = check(result)
        print(f"web self-test ({time.time() - start:.0f} s in headless Chromium): {text}")
        if problems:
            raise AssertionError("; ".join(problems))
    except Exception as e:  # every failure: say what, then show the browser's output
        print(f"web self-test FAILED: {e}", file=sys.stderr)
        if tools:
            print("--- browser console ---", file=sys.stderr)
            print("\n".join(tools.console) or "(empty)", file=sys.stderr)
        log.seek(0)
        tail = log.read().decode(errors="replace").splitlines()[-40:]
        print("--- chromium output (last 40 lines) ---", file=sys.stderr)
        print("\n".join(tail) or "(empty)", file=sys.stderr)
        sys.exit(1)
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
