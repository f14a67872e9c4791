"""Inspector pages and actions.

Reads go through memory.selectors / memory.search / memory.working / inspector.selectors, writes
through memory.services / memory.lifecycle (which record history with the staff actor and publish
to the live feed).

Every action is a plain form POST that works without JavaScript (Post/Redirect/Get, messages for
the outcome). With htmx (`HX-Request`), the same endpoint answers with the fragment the page swaps
in instead. htmx does not swap 4xx answers, so a refused htmx action answers 200 with the error in
the fragment; plain requests get the real status (400, 404, 409).

One module per page area; inspector/urls.py names them.
"""
