"""CollaborativeOptimWrapperConstructor lives in the engine and agrees with CollaborativeDistill."""


def test_constructor_names_the_students_of_the_algorithm():
    # engine does not import models, so the constructor keeps its own copy of the names
    from mmkd.engine.optimizers import collaborative_constructor
    from mmkd.models.algorithms import collaborative_distill
    assert collaborative_constructor.STUDENTS == collaborative_distill.STUDENTS


def test_constructor_is_found_by_the_engine_registry_location():
    from mmkd.registry import OPTIM_WRAPPER_CONSTRUCTORS
    cls = OPTIM_WRAPPER_CONSTRUCTORS.get('CollaborativeOptimWrapperConstructor')
    assert cls.__module__ == 'mmkd.engine.optimizers.collaborative_constructor'
