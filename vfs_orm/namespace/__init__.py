"""The namespace: path resolution across layers (``resolver``), the operations on files and
directories written once over it (``tree``), and staging-row ownership (``staging``)."""
