"""Local HTTP servers that answer as real third-party APIs do (platforms, chat, clouds).

Each fake listens on 127.0.0.1 on a free port, over real sockets, and mirrors its API's
paths, verbs, auth headers, JSON shapes, pagination and error answers.
"""
