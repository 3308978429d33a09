import os
import socket

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/")
def hello():
    return f"Hello from Flask on Hoist! (instance {os.environ.get('HOIST_INSTANCE', '?')})\n"


@app.get("/info")
def info():
    return jsonify(
        hostname=socket.gethostname(),
        greeting=os.environ.get("GREETING", ""),
        forwarded_for=request.headers.get("X-Forwarded-For", ""),
        forwarded_host=request.headers.get("X-Forwarded-Host", ""),
    )


@app.get("/kaithhealth")
def health():
    return "ok\n"
