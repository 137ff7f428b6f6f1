"""placeholder until the evaluate command lands."""


def add_parser(commands):
    pass
