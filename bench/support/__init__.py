"""What the benches and the tests share: real bundles of one tiny member, fake releases and a live server for the
serving app, the tests' tiny project, an S3 endpoint on moto, and the scale-out stack.

The benches import these (``bench.support.*``), and so do the tests; nothing here imports the tests, so running a
bench never depends on the test suite.
"""
