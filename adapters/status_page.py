"""The small page a browser gets at ``/`` (JSON clients still get Immich's answer)."""

from __future__ import annotations

STATUS_PAGE = """<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>immich-cn-ml</title>
<style>body{font-family:sans-serif;max-width:40em;margin:3em auto;line-height:1.6;padding:0 1em}</style>
</head>
<body>
<h1>immich-cn-ml</h1>
<p>服务运行中。Service running.</p>
<p>Immich：把机器学习地址（Machine Learning URL）设为本服务的地址。
Immich: set its Machine Learning URL to this address.</p>
<p>MT Photos：在 OCR、CLIP 与人脸识别设置中填入本服务的地址和 API 密钥。
MT Photos: enter this address and the API key in its OCR, CLIP and face recognition settings.</p>
<p><a href="/ping">/ping</a> · <a href="/metrics">/metrics</a></p>
</body>
</html>
"""
