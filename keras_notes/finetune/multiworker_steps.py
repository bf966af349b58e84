"""What every replica computes in one step of the multi-worker loop, and the loop's one other collective.

- The step runs on every replica with ``strategy.run``. Each replica's loss is
  ``tf.nn.compute_average_loss(per_example_loss, global_batch_size)``, its share of the
  global mean. Keras 3's TensorFlow optimizer sums the gradients over all replicas
  inside ``apply_gradients`` (``TFOptimizer._all_reduce_sum_gradients``), so the update
  is the gradient of the global batch's mean loss, exactly as on one machine. The tests
  check two workers against ``model.fit`` with SGD, whose step is proportional to the
  gradient, so a gradient summed twice or not at all would show.
- Metrics are per-replica sums combined with ``strategy.reduce(SUM, ...)``.
"""

import numpy as np


def make_steps(strategy, model, optimizer, global_batch, num_classes):
    """``(train_step, eval_step)``: ``tf.function``s over one distributed batch, reduced to totals.

    ``train_step(batch)`` -> ``[sum of the replicas' loss shares, correct predictions]``;
    ``eval_step(batch)`` -> ``[weighted loss sum, weighted correct predictions,
    (num_classes, num_classes) weighted confusion matrix]``.
    """
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction=None)  # softmax outputs, integer labels
    SUM = tf.distribute.ReduceOp.SUM

    def replica_train(images, labels, weights):
        with tf.GradientTape() as tape:
            probabilities = model(images, training=True)  # (per_replica, num_classes)
            per_example = loss_fn(labels, probabilities)  # (per_replica,)
            # This replica's share of the global batch's mean: sum / global_batch.
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        gradients = tape.gradient(loss, model.trainable_variables)
        # In a replica context Keras 3's TensorFlow optimizer all-reduces (sums) the gradients
        # before updating the mirrored variables, so they are not summed here as well.
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        predicted = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return loss, tf.reduce_sum(tf.cast(predicted == labels, tf.float32))

    def replica_eval(images, labels, weights):
        probabilities = model(images, training=False)
        predicted = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        confusion = tf.math.confusion_matrix(labels, predicted, num_classes, weights=weights, dtype=tf.float32)
        return (tf.reduce_sum(loss_fn(labels, probabilities) * weights),
                tf.reduce_sum(tf.cast(predicted == labels, tf.float32) * weights), confusion)

    @tf.function
    def train_step(batch):
        results = strategy.run(replica_train, args=batch)
        return [strategy.reduce(SUM, value, axis=None) for value in results]

    @tf.function
    def eval_step(batch):
        results = strategy.run(replica_eval, args=batch)
        return [strategy.reduce(SUM, value, axis=None) for value in results]

    return train_step, eval_step


def agree(strategy, value):
    """The smallest ``value`` over all workers (each passes its own); a collective, so all must call it."""
    import tensorflow as tf

    per_replica = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant([value], tf.int64))
    return int(np.min(strategy.gather(per_replica, axis=0).numpy()))
