"""The `p2pnode` command line: argument parsing and dispatch (`main`), shared helpers (`common`),
circle commands (`circles`), resource commands (`blobs`) and the commands that run or ask a
node (`node`). Every command prints one line on error and exits 0 ok, 1 error, 2 usage.
"""
