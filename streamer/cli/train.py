"""placeholder until the train command lands."""


def add_parser(commands):
    pass
