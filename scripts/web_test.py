#!/usr/bin/env python3
"""The web page's test in a real browser: serves web/dist on 127.0.0.1 and drives headless
Chromium (WebGPU on SwiftShader, no GPU needed) through the DevTools protocol, in two parts.

1. The self-test: opens index.html?selftest, waits for the page's #selftest element to hold its
   JSON line, and checks it: ok, at least five kernel families within tolerance, and a
   training loss that fell.
2. The page as a person uses it (when EMOJI_DIR, ../shared/data/emoji-noto by default, is
   there): copies a slice of the emoji (the first PER_CLASS images of each category, plus a
   hidden file and a text file the rules skip) into a folder, drops it on the page (64×64,
   decoded on the page's thread with Worker hidden, as in a browser without workers), picks
   it through #folder at 32×32 (decoded on workers), checks that widths 0,32 is refused by
   name, starts a small conv-vae with #start, waits for STEPS steps, pauses with #pause,
   checks through window.gpuAeStatus() that the loss fell, evaluates on the test images in
   the page, downloads model.safetensors with #download (and optimizer.safetensors), and runs
   the native `GPU_AE eval` on it with the same folder: its test −ELBO must be the page's;
   then `GPU_AE train --resume` on the two downloads finishes the paused epoch natively (or
   the next, after a pause between two).
   Then models in: the shipped emoji model opened through #file on the same folder (its
   evaluation in the page must be gpu-ae eval's), and the shipped conditional MNIST model on
   MNIST. Last a lost device: the browser's GPU process crashed while MNIST trains; the page
   must say so, keep the last epoch's files and continue from them on a new device.
   Screenshots of the page go to SCREENSHOT_DIR when set.

On any failure it prints the browser's console output and exits 1. Python's standard library
only (the DevTools WebSocket is spoken below).

Usage: web_test.py CHROMIUM DIST_DIR [TIMEOUT_S]
Environment: GPU_AE (default target/release/gpu-ae), EMOJI_DIR, SCREENSHOT_DIR, and for longer
runs (the README's screenshots) WEB_TEST_STEPS and WEB_TEST_PER_CLASS.
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


# The page part: images per emoji category, training steps to wait for, and the settings.
PER_CLASS = int(os.environ.get("WEB_TEST_PER_CLASS", 8))
STEPS = int(os.environ.get("WEB_TEST_STEPS", 12))
SETTINGS = {"size": 32, "widths": "16,32,64", "latent": 32, "batch": 16, "epochs": 40}


def js(tools, expression):
    """The value of a JavaScript expression in the page (promises awaited)."""
    r = tools.call("Runtime.evaluate", expression=expression, returnByValue=True,
                   awaitPromise=True)
    if "exceptionDetails" in r:
        d = r["exceptionDetails"]
        raise RuntimeError(d.get("exception", {}).get("description", d.get("text", expression)))
    return r.get("result", {}).get("value")


def wait_for(tools, expression, deadline, what):
    """Polls `expression` until it is truthy; returns its value."""
    while time.time() < deadline:
        v = js(tools, expression)
        if v:
            return v
        error = js(tools, "document.getElementById('status').classList.contains('error') && "
                          "document.getElementById('status').textContent")
        if error:
            raise AssertionError(f"while waiting for {what}, the page says: {error}")
        time.sleep(0.5)
    raise TimeoutError(f"no {what} before the deadline")


def screenshot(tools, name):
    out = os.environ.get("SCREENSHOT_DIR")
    if not out:
        return
    os.makedirs(out, exist_ok=True)
    png = tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
    with open(os.path.join(out, name), "wb") as f:
        f.write(base64.b64decode(png))


def set_files(tools, selector, paths):
    """Picks `paths` (files, or a folder for a webkitdirectory input) in a file input."""
    root = tools.call("DOM.getDocument")["root"]["nodeId"]
    node = tools.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
    tools.call("DOM.setFileInputFiles", nodeId=node, files=paths)


def drop_files(tools, selector, paths):
    """Drags `paths` (files or folders) onto the element `selector` and drops them."""
    x, y = js(tools, f"(b => [b.x + b.width / 2, b.y + b.height / 2])"
                     f"(document.querySelector('{selector}').getBoundingClientRect())")
    data = {"items": [], "files": paths, "dragOperationsMask": 1}
    for kind in ("dragEnter", "dragOver", "drop"):
        tools.call("Input.dispatchDragEvent", type=kind, x=x, y=y, data=data)


def emoji_slice(source, into):
    """The first PER_CLASS images of each category of `source`, a hidden image and a text file."""
    for category in sorted(os.listdir(source)):
        folder = os.path.join(source, category)
        if not os.path.isdir(folder):
            continue
        os.makedirs(os.path.join(into, category))
        for name in sorted(f for f in os.listdir(folder) if f.endswith(".png"))[:PER_CLASS]:
            shutil.copy(os.path.join(folder, name), os.path.join(into, category, name))
    first = next(iter(sorted(os.listdir(into))))
    some = sorted(os.listdir(os.path.join(into, first)))[0]
    shutil.copy(os.path.join(into, first, some), os.path.join(into, ".hidden.png"))
    with open(os.path.join(into, "notes.txt"), "w") as f:
        f.write("not an image\n")


def page_test(tools, base, deadline, scratch):
    """The page as a person uses it (see the module doc); returns a summary line."""
    source = os.environ.get("EMOJI_DIR", "../shared/data/emoji-noto")
    gpu_ae = os.environ.get("GPU_AE", "target/release/gpu-ae")
    if not os.path.isdir(source):
        return f"page test SKIPPED: {source} is not there"
    folder = os.path.join(scratch, "emoji-slice")
    emoji_slice(source, folder)
    downloads = os.path.join(scratch, "downloads")
    os.makedirs(downloads)
    t0 = time.time()
    tools.call("Page.navigate", url=f"{base}/index.html")
    wait_for(tools, "window.gpuAeStatus && gpuAeStatus().data && gpuAeStatus().data.name",
             deadline, "MNIST loaded")
    # The folder dropped on the page at its own size, decoded on the page's thread as in a
    # browser without workers, then picked through #folder at 32×32 and decoded on workers.
    js(tools, "window.pageWorker = window.Worker; window.Worker = undefined")
    drop_files(tools, "#drop", [os.path.abspath(folder)])
    dropped = wait_for(tools, "gpuAeStatus().data.name === 'emoji-slice' && gpuAeStatus().data",
                       deadline, "the dropped folder decoded")
    if (dropped["channels"], dropped["size"]) != (3, 64):
        raise AssertionError(f"the dropped folder loaded as {dropped}, not colour 64×64")
    without_workers = js(tools, "gpuAeStatus().decoder")
    if without_workers != "the page's thread":
        raise AssertionError(f"without workers the folder was decoded on {without_workers}")
    js(tools, "window.Worker = window.pageWorker")
    js(tools, f"document.getElementById('size').value = {SETTINGS['size']}")
    set_files(tools, "#folder", [os.path.abspath(folder)])
    data = wait_for(tools, f"gpuAeStatus().data.size === {SETTINGS['size']} && gpuAeStatus().data",
                    deadline, "the picked folder decoded")
    if (data["channels"], data["size"], data["ignored"]) != (3, SETTINGS["size"], 1):
        raise AssertionError(f"the folder loaded as {data}, not colour 32×32 with 1 file ignored")
    decoder = js(tools, "gpuAeStatus().decoder")
    if "workers" not in decoder:
        raise AssertionError(f"the folder was decoded on {decoder}, not on workers")
    for key in ("widths", "latent", "batch", "epochs"):
        js(tools, f"(e => {{ e.value = {json.dumps(str(SETTINGS[key]))}; e.onchange(); }})"
                  f"(document.getElementById('{key}'))")
    # A setting the rules refuse is named in the page, as the command line names its flag.
    js(tools, "(e => { e.value = '0,32'; e.onchange(); })(document.getElementById('widths'))")
    js(tools, "document.getElementById('start').click()")
    refused = wait_for(tools, "document.getElementById('status').classList.contains('error') && "
                              "document.getElementById('status').textContent", deadline,
                       "the refusal of widths 0,32")
    if "widths" not in refused:
        raise AssertionError(f"widths 0,32 was refused without naming the setting: {refused}")
    js(tools, f"(e => {{ e.value = {json.dumps(SETTINGS['widths'])}; e.onchange(); }})"
              "(document.getElementById('widths'))")
    js(tools, "document.getElementById('status').classList.remove('error')")
    clicked = js(tools, "performance.now()")
    js(tools, "document.getElementById('start').click()")
    first_step = wait_for(tools, "gpuAeStatus().steps > 0 && performance.now()", deadline,
                          "a first step")
    wait_for(tools, f"gpuAeStatus().steps >= {STEPS}", deadline, f"{STEPS} steps")
    screenshot(tools, "web-emoji-training.png")
    images_per_s = js(tools, "Number(document.getElementById('ips').textContent)")
    js(tools, "document.getElementById('pause').click()")
    wait_for(tools, "document.getElementById('status').textContent === 'Paused.'", deadline,
             "the pause")
    status = js(tools, "gpuAeStatus()")
    if not (status["loss_last"] < status["loss_first"]):
        raise AssertionError(f"the loss did not fall: {status}")
    js(tools, "window.gpuAeEval = null; document.getElementById('evaluate').click()")
    page_eval = wait_for(tools, "window.gpuAeEval", deadline, "the page's evaluation")
    screenshot(tools, "web-emoji-paused.png")
    tools.call("Page.setDownloadBehavior", behavior="allow", downloadPath=downloads)
    files = {}
    for button, name in (("download", "model.safetensors"),
                         ("download-optimizer", "optimizer.safetensors")):
        js(tools, f"document.getElementById('{button}').click()")
        files[name] = os.path.join(downloads, name)
        while not os.path.exists(files[name]) and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1)
    model = files["model.safetensors"]
    native = subprocess.run([gpu_ae, "eval", "--checkpoint", model, "--data", folder, "--json"],
                            capture_output=True, text=True, timeout=max(60, deadline - time.time()))
    if native.returncode != 0:
        raise AssertionError(f"gpu-ae eval failed: {native.stderr.strip()}")
    figures = json.loads(native.stdout)
    ours, theirs = page_eval["test_neg_elbo"], figures["test_neg_elbo"]
    if abs(ours - theirs) > 1e-3 * abs(theirs):
        raise AssertionError(f"test -ELBO {ours} in the page, {theirs} from gpu-ae eval")
    # The two downloads are a run folder that `gpu-ae train --resume` continues: the rest of
    # the paused epoch natively, or the next epoch when the pause fell between two.
    run = os.path.join(scratch, "run")
    os.makedirs(run)
    for name, path in files.items():
        shutil.copy(path, os.path.join(run, name))
    epochs = status["steps"] // status["epoch_steps"] + 1
    resumed = subprocess.run([gpu_ae, "train", "--resume", run, "--data", folder, "--epochs",
                              str(epochs), "--quiet"], capture_output=True, text=True,
                             timeout=max(60, deadline - time.time()))
    if resumed.returncode != 0:
        raise AssertionError(f"gpu-ae train --resume of the downloads failed: "
                             f"{resumed.stderr.strip()}")
    # Models in: the shipped colour emoji model on the same folder (the page's evaluation must
    # be gpu-ae eval's), and the shipped conditional MNIST model on MNIST.
    emoji_model = os.path.abspath("assets/models/emoji-vae-32.safetensors")
    drawn = js(tools, "gpuAeStatus().previews")
    set_files(tools, "#file", [emoji_model])
    wait_for(tools, f"gpuAeStatus().previews > {drawn}", deadline, "the emoji model's pictures")
    js(tools, "window.gpuAeEval = null; document.getElementById('evaluate').click()")
    shipped_page = wait_for(tools, "window.gpuAeEval", deadline, "the emoji model's evaluation")
    shipped = subprocess.run([gpu_ae, "eval", "--checkpoint", emoji_model, "--data", folder,
                              "--json"], capture_output=True, text=True, timeout=300)
    shipped_native = json.loads(shipped.stdout)["test_neg_elbo"]
    if abs(shipped_page["test_neg_elbo"] - shipped_native) > 1e-3 * abs(shipped_native):
        raise AssertionError(f"the emoji model's test -ELBO: {shipped_page['test_neg_elbo']} "
                             f"in the page, {shipped_native} from gpu-ae eval")
    screenshot(tools, "web-emoji-model.png")
    js(tools, "document.getElementById('use-mnist').click()")
    wait_for(tools, "gpuAeStatus().data.name === 'mnist'", deadline, "MNIST loaded again")
    drawn = js(tools, "gpuAeStatus().previews")
    set_files(tools, "#file", [os.path.abspath("assets/models/conv-cvae-L2.safetensors")])
    wait_for(tools, f"gpuAeStatus().previews > {drawn}", deadline,
             "the conditional model's pictures")
    if "conditional on 10" not in js(tools, "document.getElementById('status').textContent"):
        raise AssertionError("the conditional MNIST model did not open as one")
    screenshot(tools, "web-mnist-cvae.png")
    lost = device_lost_test(tools, deadline)
    return (f"page test ({time.time() - t0:.0f} s): {data['train']} training and {data['test']} "
            f"test emoji dropped (64×64, decoded on {without_workers} with Worker hidden) and "
            f"picked through #folder (32×32), decoded on {decoder}, {status['steps']} steps, loss "
            f"{status['loss_first']:.1f} -> {status['loss_last']:.1f}, {images_per_s} images/s "
            f"(previews included), first step {(first_step - clicked) / 1000:.1f} s after Start "
            f"({first_step / 1000:.1f} s after the page opened), {status['adapter']}; widths 0,32 "
            f"refused: {refused!r}; test -ELBO "
            f"{ours:.3f} in the page, {theirs:.3f} from gpu-ae eval on the downloaded model "
            f"(PSNR {page_eval['test_psnr']:.2f} / {figures['test_psnr']:.2f} dB); gpu-ae train "
            f"--resume of the two downloads trained to the end of epoch {epochs}; the shipped "
            f"emoji model "
            f"opened on the folder: test -ELBO {shipped_page['test_neg_elbo']:.3f} in the page, "
            f"{shipped_native:.3f} from gpu-ae eval; the conditional MNIST model opened; {lost}")


def device_lost_test(tools, deadline):
    """A lost device: MNIST training (256 images, 4 steps an epoch) past its first epoch, then
    the browser's GPU process crashed (chrome://gpucrash in a second tab). The page must say
    the device was lost and that the first epoch's files are kept, and Continue must go on
    training from them on a new device."""
    for key, value in (("images", 256), ("batch", 64), ("latent", 2), ("epochs", 10)):
        js(tools, f"(e => {{ e.value = '{value}'; e.onchange(); }})"
                  f"(document.getElementById('{key}'))")
    js(tools, "document.getElementById('start').click()")
    wait_for(tools, "gpuAeStatus().steps >= 6", deadline, "6 steps of MNIST")
    port = tools.port
    request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?chrome://gpucrash",
                                     method="PUT")
    urllib.request.urlopen(request).read()
    said = ""
    while time.time() < deadline and "lost" not in said:
        said = js(tools, "document.getElementById('status').textContent")
        time.sleep(0.5)
    if "kept in the page" not in said:
        raise AssertionError(f"after the GPU process crashed the page says: {said!r}")
    before = js(tools, "gpuAeStatus().steps")
    js(tools, "document.getElementById('start').click()")
    wait_for(tools, f"gpuAeStatus().steps >= {before} + 2", deadline,
             "steps after Continue on a new device")
    js(tools, "document.getElementById('pause').click()")
    wait_for(tools, "document.getElementById('status').textContent === 'Paused.'", deadline,
             "the pause after the lost device")
    error = js(tools, "document.getElementById('status').classList.contains('error') && "
                      "document.getElementById('status').textContent")
    if error:
        raise AssertionError(f"after Continue on a new device the page says: {error}")
    after = js(tools, "gpuAeStatus().steps")
    return (f"a crashed GPU process: the page said {said[:60]!r}…, and Continue trained on from "
            f"the kept epoch ({before} steps before, {after} after)")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    chromium, dist = sys.argv[1], sys.argv[2]
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 600
    server = serve(dist)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    url = f"{base}/index.html?selftest"
    profile = tempfile.mkdtemp(prefix="gpu-ae-chromium-")
    scratch = tempfile.mkdtemp(prefix="gpu-ae-web-test-")
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
        tools.port = port
        tools.call("Runtime.enable")
        tools.call("Log.enable")
        tools.call("Page.enable")
        tools.call("Emulation.setDeviceMetricsOverride", width=1280, height=1100,
                   deviceScaleFactor=1, mobile=False)
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
        print(page_test(tools, base, deadline, scratch))
    except Exception as e:  # every failure: say what, then show the browser's output
        print(f"web test FAILED: {e}", file=sys.stderr)
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
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
