"""The edXML format (QCVN 102:2016): model, writer, reader, signing, identifiers.

Pure: no I/O beyond the bytes and files it is given, so it can be tested exhaustively and reused
as a library.
"""
