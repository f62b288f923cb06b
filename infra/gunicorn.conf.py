"""gunicorn settings for medbill's web processes (`medbill web` and `gunicorn -c infra/gunicorn.conf.py`)."""

import os

wsgi_app = "medbill.wsgi:app"
bind = os.environ.get("MEDBILL_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("MEDBILL_WEB_THREADS", "4"))
timeout = 60
graceful_timeout = 20
keepalive = 5
# Recycle workers now and then so per-process memory (catalog caches of many tenant schemas) stays bounded.
max_requests = 5000
max_requests_jitter = 500
accesslog = "-"
# Paths only: query strings can carry search terms (names), which must not reach the logs.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
errorlog = "-"
# gunicorn 27 opens a control socket in the home directory by default; several web processes would share it.
control_socket_disable = True
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
