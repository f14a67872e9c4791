"""Development tools shared by the tests and the benchmarks, never imported by the product.

`devtools.llm_server` is the scripted OpenAI-compatible server both drive the product's LLM paths with.
"""
