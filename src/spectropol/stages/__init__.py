"""One module per workflow stage (rules/<stage>.smk): each holds the functions that scripts/ and
the command line call, taking typed options and returning a typed result whose fields are the
QA figures. Stages combine kernels and I/O; nothing below this package imports it."""
